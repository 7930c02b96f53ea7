"""Union documents (議案書 and the like): PDF and images with versions, for an audience inside the union."""
