"""The query side's language: metadata filters, the parser of dates and places in a query, query operators and spelling correction."""
