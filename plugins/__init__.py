"""trimkit's built-in pipeline stages, one module or package each, registered under these names."""

BUILTIN = ("client_noise", "system_prompt", "reminders", "tools", "output_format", "budget")
