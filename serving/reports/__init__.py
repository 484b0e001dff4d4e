"""Situation reports (调度日报 / 形势周报 / 月报): one period's figures from the store, drawn as one
self-contained HTML document (inline charts) or an A4 PDF printed from it by Chromium.

Used by `triage report`, the admins' `/reports` page and `GET /v1/reports/summary`, so the three show
the same figures: `build.build_report` computes them, `render` draws them, `pdf` prints them.
"""
