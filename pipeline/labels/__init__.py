"""Label sources (land cover, land use, crisis events) and their harmonization."""
