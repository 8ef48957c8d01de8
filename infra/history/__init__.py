"""Reading the log's history back: rejections and their re-drive, the lineage of a resource."""
