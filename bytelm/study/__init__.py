"""Studies: many ordinary training runs (arms x seeds x budgets, learning-rate sweeps) and the
statistics that answer a question with error bars. `spec` reads a study file, `plan` turns it
into cells, `run` trains and scores them, `stats` and `report` write results.json and STUDY.md;
`bytelm.commands.study` is the command."""
