"""One module per ``harness`` subcommand; imported only when that command runs."""
