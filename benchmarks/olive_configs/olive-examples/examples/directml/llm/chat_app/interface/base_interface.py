# pylint: disable=disallowed-name


class BaseLLMInterface:
    def __init__(self):
        pass

    def foo(self):
        pass
