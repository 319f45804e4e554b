"""Methods: the triplet engine, one module per method, and the registry that lists them.

``registry.py`` says what a method declares and lists the registered ones;
``base``, ``content``, ``style`` (trained by the triplet engine in ``triplet.py`` on
the terms of ``terms.py``), ``veit`` (bilinear) and ``ours`` (a combination of the
others' embeddings) are the methods; ``linear.py`` holds what the linear methods
share and ``encoders.py`` their encoders.
"""
