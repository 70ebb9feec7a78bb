"""CLI commands, one module per area; importing a module registers its commands on the app.

Every command module is imported to build `talkqa --help`, so a module imports only typer and rich at
the top, and each command imports the library it runs inside its body: a command pays only for what
it uses (`talkqa score` never imports the benchmark, `talkqa --help` imports neither)."""
