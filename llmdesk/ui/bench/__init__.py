"""The Benchmark page's parts (core domain: bench): the run on its own thread, the levels table, the plots,
the cost panel and the saved runs.

plots.py imports pyqtgraph (about half a second), so nothing imports it until the page is first shown,
and then in a worker thread.
"""
