// Package exampleutil holds what the programs under examples/ share:
// choosing between the embedded fake WeCom server and a real corp, reading
// the member and department import templates back into wecom values, and a
// progress bar for WaitBatchResult. It is internal to the examples and not
// part of the wecom API.
package exampleutil
