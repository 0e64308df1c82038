"""placeholder"""
def load_keras_tokenizer(path_or_file):
    raise NotImplementedError
