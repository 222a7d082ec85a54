"""searchmgr: discover adaptive training schedules by UCT search over checkpointed recipe segments."""

__version__ = "0.1.0"
