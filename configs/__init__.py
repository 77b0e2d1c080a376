"""Built-in presets, one YAML file per task; installed as the package ``adcli.configs``."""
