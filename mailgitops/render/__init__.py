"""Output formats, chosen by name: plans (`plans.RENDERERS`: text, json, markdown) and a
config's diagnostics (`diagnostics.REPORTERS`: text, json, github). Each module is imported
only by the commands that print its kind of output."""
