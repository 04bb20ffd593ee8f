"""Output for people and graders: console, HTML report, diagram, the files commands write."""
