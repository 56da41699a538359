"""``cascade demo``: a real three-rung cascade on the offline model ladder, with a report.

The workloads (support tickets to classify, invoice messages to extract) ship in ``demo/data``.
"""

from ._grounding import grounded, unsupported_fields
from ._tasks import INVOICE_TASK, LABELS, TICKET_TASK, Invoice, Task, load_items

__all__ = ["INVOICE_TASK", "LABELS", "TICKET_TASK", "Invoice", "Task", "grounded", "load_items", "unsupported_fields"]
