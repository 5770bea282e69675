"""The recommendation pipeline (recall → merge → ranking → fusion → re-rank), built once from a bundle and
run by serving and offline evaluation alike."""

from shoprec.pipeline.build import assemble_pipeline, build_pipeline
from shoprec.pipeline.core import Prepared, Recommendation, RecommendationPipeline, Request

__all__ = [
    "Prepared",
    "Recommendation",
    "RecommendationPipeline",
    "Request",
    "assemble_pipeline",
    "build_pipeline",
]
