"""Drawings, one module per question: ``draw_*(data, **extra) -> matplotlib Figure``.

The context modules (``report/questions/``) choose the data and pass a drawing to ``Figure``; the
figure cache is keyed by that data and by the drawing's module with the project modules it imports
(``report.figures.drawing_files``).
"""
