package wecom

// SetMinExportBlockSize lowers the smallest BlockSize c accepts, so that
// tests against wecomtest.WithMinBlockSize get several data files from a
// small directory.
func SetMinExportBlockSize(c *Client, n int) { c.minExportBlock = n }
