"""Media work through ffmpeg (argument lists, never a shell) and probing through PyAV."""
