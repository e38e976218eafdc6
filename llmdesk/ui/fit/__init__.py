"""The fit report panel (verdict, memory, context and concurrency), shown by the Models and Server pages."""
