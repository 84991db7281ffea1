"""FlowRun decisions, pure: the state machine and how it reads tasks from Jobs and pods."""
