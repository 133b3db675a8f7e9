"""`python -m video_pipeline.cli`: the same as the `video-pipeline` command."""

import sys

from video_pipeline.cli.main import main

sys.exit(main())
