"""Media: the aiortc recorder peer and keyframe snapshots."""
