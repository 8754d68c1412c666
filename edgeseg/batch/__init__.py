"""Run a model over many recordings (``edgeseg batch``): one task per recording, outputs written
whole per recording, resumable, on Ray actors when Ray is installed (``edgeseg[ray]``) or one
after another in this process.

    from edgeseg.batch import BatchSettings, run_batch
    summary = run_batch(BatchSettings(model="model.onnx"), ["drives/*.mp4"], "out/")
"""
from .inputs import Recording, expand_inputs
from .runner import SUMMARY_JSON, SequentialRunner, model_digest, ray_available, recording_key, run_batch
from .worker import RESULTS_JSONL, STATS_JSON, BatchSettings, RecordingWorker

__all__ = ["run_batch", "BatchSettings", "Recording", "expand_inputs", "RecordingWorker", "SequentialRunner",
           "model_digest", "recording_key", "ray_available", "SUMMARY_JSON", "RESULTS_JSONL", "STATS_JSON"]
