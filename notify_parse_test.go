package wecom

import "testing"

// TestParseBatchJobEventWhitespaceVariants: indented XML, with or without
// CDATA, gives the same event as the compact form — ErrMsg included.
func TestParseBatchJobEventWhitespaceVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		xml  string
	}{
		{"compact CDATA", batchXML("j1", "export_user", "302005")},
		{"indented CDATA", "<xml>\n  <ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n  <Event>\n    <![CDATA[batch_job_result]]>\n  </Event>\n" +
			"  <BatchJob>\n    <JobId>\n      <![CDATA[j1]]>\n    </JobId>\n    <JobType> <![CDATA[export_user]]> </JobType>\n" +
			"    <ErrCode>\n      302005\n    </ErrCode>\n    <ErrMsg>\n      <![CDATA[ok]]>\n    </ErrMsg>\n  </BatchJob>\n</xml>\n"},
		{"indented plain text", "<xml>\n <Event>batch_job_result</Event>\n <BatchJob>\n  <JobId> j1 </JobId>\n  <JobType>\texport_user\t</JobType>\n" +
			"  <ErrCode> 302005 </ErrCode>\n  <ErrMsg>\n   ok\n  </ErrMsg>\n </BatchJob>\n</xml>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseBatchJobEvent([]byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			if ev.JobID != "j1" || ev.JobType != "export_user" || ev.ErrCode != 302005 || ev.ErrMsg != "ok" {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}
