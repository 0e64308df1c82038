// Explicit instantiations of the embedding_bag kernels (contracts in bag.hpp).
#define FE_BAG_DEFINE_INSTANCES
#include "fe/bag.hpp"

namespace fe {
FE_BAG_INSTANCES()
}  // namespace fe
