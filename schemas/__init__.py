"""JSON Schemas of mailgitops, shipped in the wheel as mailgitops.schemas."""
