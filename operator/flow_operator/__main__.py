from flow_operator.main import cli

cli()
