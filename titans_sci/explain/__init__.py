"""What a trained DNA model says about bases and variants: attributions (in-silico saturation
mutagenesis, gradient x input, integrated gradients) drawn as logos, and variant effects from a
VCF against an indexed reference (see each module)."""

from .attributions import (
    BASES,
    DNAModel,
    annotator_view,
    baseline_scores,
    classifier_view,
    gradient_x_input,
    gradients,
    integrated_gradients,
    ism_track,
    saturation_mutagenesis,
    strand_scores,
    view_of,
)
from .logo import attribution_logo
from .variants import Reference, Variant, log_odds, read_vcf, variant_windows

__all__ = [
    "BASES",
    "DNAModel",
    "annotator_view",
    "baseline_scores",
    "classifier_view",
    "view_of",
    "Reference",
    "Variant",
    "attribution_logo",
    "gradient_x_input",
    "gradients",
    "integrated_gradients",
    "ism_track",
    "log_odds",
    "read_vcf",
    "saturation_mutagenesis",
    "strand_scores",
    "variant_windows",
]
