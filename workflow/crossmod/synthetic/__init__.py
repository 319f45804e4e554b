"""The embedded synthetic datasets (SPEC section 2), in the release format."""

from crossmod.synthetic.generate import generate
from crossmod.synthetic.settings import GeneratorSettings

__all__ = ["GeneratorSettings", "generate"]
