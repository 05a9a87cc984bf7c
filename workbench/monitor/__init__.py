"""Monitoring: the prediction log, outcomes fed back, live quality and drift, alerts, reports and the live dashboard."""
from workbench.monitor.feedback import FeedbackError, check_outcomes, feed_back, feed_back_file
from workbench.monitor.quality import Alert, MonitorStatus, Thresholds, status
from workbench.monitor.store import MonitorError, PredictionLog, Recorder, store_path

__all__ = ["Alert", "FeedbackError", "MonitorError", "MonitorStatus", "PredictionLog", "Recorder", "Thresholds",
           "check_outcomes", "feed_back", "feed_back_file", "status", "store_path"]
