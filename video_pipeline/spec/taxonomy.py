"""Task categories: what kind of generation a shot asks for, decided from its inputs."""

from __future__ import annotations

from enum import Enum


class TaskCategory(str, Enum):
    TEXT_TO_VIDEO = "text_to_video"        # text prompt -> new video
    IMAGE_TO_VIDEO = "image_to_video"      # image + text -> animated video
    VIDEO_TO_VIDEO = "video_to_video"      # existing video -> restyled video
    VIDEO_ENHANCE = "video_enhance"        # existing video -> higher quality
    AUDIO_LIP_SYNC = "audio_lip_sync"      # portrait + speech -> talking head


def categorize(*, image: bool, video: bool, transform: str | None, audio: bool, use_case: str) -> TaskCategory:
    """The category of a shot from the inputs it carries (the campaign model has already
    rejected impossible combinations such as image and video together)."""
    if video:
        return TaskCategory.VIDEO_ENHANCE if transform == "upscale" else TaskCategory.VIDEO_TO_VIDEO
    if image and audio and use_case == "talking_head":
        return TaskCategory.AUDIO_LIP_SYNC
    if image:
        return TaskCategory.IMAGE_TO_VIDEO
    return TaskCategory.TEXT_TO_VIDEO


def shot_category(shot, video, use_case: str) -> TaskCategory:
    """The category of a campaign shot (a `Shot` of a `Video`)."""
    return categorize(image=shot.image is not None, video=shot.video is not None, transform=shot.transform,
                      audio=video.audio is not None, use_case=use_case)
