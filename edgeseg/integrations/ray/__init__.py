"""``edgeseg batch`` on Ray: a pool of actors, each loading the model once and processing one
recording at a time (needs ``pip install 'edgeseg[ray]'``; Ray is imported when a runner starts)."""
from .runner import OBJECT_STORE_BYTES, RayRunner, start_local_ray


def is_available() -> bool:
    """Whether Ray can be imported (the ``edgeseg[ray]`` extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["RayRunner", "OBJECT_STORE_BYTES", "start_local_ray", "is_available"]
