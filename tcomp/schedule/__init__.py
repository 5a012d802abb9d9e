"""Schedules: how to compute, separate from what."""

from tcomp.schedule.relation import AttachType, ScheduleError
from tcomp.schedule.schedule import Schedule, create_schedule
from tcomp.schedule.stage import Stage

__all__ = ["AttachType", "Schedule", "ScheduleError", "Stage", "create_schedule"]
