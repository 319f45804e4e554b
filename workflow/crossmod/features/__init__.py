"""Features (SPEC 3): what every annotation becomes before any network sees it.

``python -m crossmod.features.images`` runs the CNN (``backbones``) once per image;
``crossmod.features.annotations`` masks the conv maps by each annotation's BubbleView
map (``gaze``), encodes the caption (``glove``, ``text``) and reads the BFI-10 answers
(``bfi``), plus the gaze statistics the identity classifier uses.
"""
