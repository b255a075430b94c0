"""Item localisation: find the item in each tunnel frame and produce an upright crop and mask."""

from .core import DEFAULT, LocalizeConfig, localize, segment, upright_rect, whole_frame
from .stage import LocalizeStage

__all__ = ["DEFAULT", "LocalizeConfig", "LocalizeStage", "localize", "segment", "upright_rect", "whole_frame"]
