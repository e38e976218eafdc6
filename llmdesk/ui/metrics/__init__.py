"""The Dashboard page's parts (core domain: metrics): the recorder (scrape and GPU loop), the tiles and the charts.

charts.py imports pyqtgraph (about half a second), so nothing imports it until the page is first
shown, and then in a worker thread.
"""
