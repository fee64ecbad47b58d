"""Training the models (``digits train``) and measuring them on held-out files (``digits evaluate``).

``data`` reads the training sets and holds part of each out; ``augment`` and
``amounts`` make varied training digits and lines; ``architectures`` holds the
networks; ``classifier`` and ``strings`` are the two training procedures, which
save each model with its metadata (``saving``).
"""
