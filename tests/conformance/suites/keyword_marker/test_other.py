def test_delta():
    pass


def test_alpha_again():
    pass
