"""What a person looks at: figures, the QC tables and figure (``OUT/qc``), the HTML
pages, and the text summary of a file (``spikeprep inspect``).

May import: core, io, rates, export, analysis.
"""
