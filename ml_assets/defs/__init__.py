"""This code location's defs folder: a pipeline declared as a `defs.yaml` (`dg scaffold defs
ml_assets.component.PipelineComponent <name>`) lives in a folder of its own here."""
