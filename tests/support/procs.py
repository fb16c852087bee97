"""Services as real processes in tests: the same runner `attune run` and the demo use."""

from attune_cli.stack import ServiceProcess, free_port, start_stack, stop_stack

__all__ = ["ServiceProcess", "free_port", "start_stack", "stop_stack"]
