"""The book: generated pages and table of contents, the summary, the werkwijzer, the
architecture appendix, reading released outputs, checks of the pages.
"""
