"""The embedded synthetic datasets (SPEC section 2), in the release format."""

from crossmod.data.synthetic.generate import generate
from crossmod.data.synthetic.settings import GeneratorSettings

__all__ = ["GeneratorSettings", "generate"]
