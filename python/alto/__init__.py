"""alto's Python side: the ``alto`` command is the wheel's binary; ``alto.dlt``
feeds dlt pipelines from Singer taps run by that binary."""
