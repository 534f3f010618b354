"""The lab: experiments behind the ``droplab`` subcommands, their results files and plots."""
