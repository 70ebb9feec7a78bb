"""The top floor: the scorer, trained model bundles, diagnostics, batch scoring, the benchmark, HTML
reports, the demo and the command line. It may import every floor below; nothing imports it."""
