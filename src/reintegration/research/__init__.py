"""Research data (pseudonymised): the analysis panel from the linked data and the CBS
files, its description, and the words for its variables.
"""
