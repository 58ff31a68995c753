package exampleutil

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wecomkit/wecom"
)

// ReadMembersFile reads members from path: a CSV file in WeCom's member
// import template (.csv), or a JSON array of wecom.Member (.json).
func ReadMembersFile(path string) ([]wecom.Member, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return ReadMembersCSV(f)
	case ".json":
		var ms []wecom.Member
		if err := json.NewDecoder(f).Decode(&ms); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return ms, nil
	}
	return nil, fmt.Errorf("%s: want a .csv or .json file", path)
}

// ReadMembersCSV reads WeCom's member import template (the format
// wecom.WriteMembersCSV writes) back into members. Columns are found by
// their header; unknown columns become ExtAttrs. Values are not validated
// here: wecom.ImportMembers does that, naming the row and column.
func ReadMembersCSV(r io.Reader) ([]wecom.Member, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("member CSV: empty file")
	}
	header := rows[0]
	var out []wecom.Member
	for i, rec := range rows[1:] {
		var m wecom.Member
		for j, h := range header {
			if j >= len(rec) {
				break
			}
			v := rec[j]
			var err error
			switch h {
			case wecom.CSVColName:
				m.Name = v
			case wecom.CSVColUserID, "账号":
				m.UserID = v
			case wecom.CSVColMobile:
				m.Mobile = v
			case wecom.CSVColEmail:
				m.Email = v
			case wecom.CSVColDepartments:
				m.Departments, err = intList(v)
			case wecom.CSVColPosition:
				m.Position = v
			case wecom.CSVColGender:
				switch v {
				case "男", "1":
					m.Gender = wecom.GenderMale
				case "女", "2":
					m.Gender = wecom.GenderFemale
				case "", "0":
				default:
					err = fmt.Errorf("gender %q is not 男 or 女", v)
				}
			case wecom.CSVColIsLeaderInDept:
				var l []int
				if l, err = intList(v); err == nil {
					for _, x := range l {
						m.IsLeaderInDept = append(m.IsLeaderInDept, x == 1)
					}
				}
			case wecom.CSVColOrder:
				m.Order, err = intList(v)
			case wecom.CSVColAlias:
				m.Alias = v
			case wecom.CSVColAddress:
				m.Address = v
			case wecom.CSVColTelephone:
				m.Telephone = v
			case wecom.CSVColDisabled:
				m.Disabled = v == "1"
			case wecom.CSVColDisabledNote:
			default:
				if v != "" {
					if m.ExtAttrs == nil {
						m.ExtAttrs = map[string]string{}
					}
					m.ExtAttrs[h] = v
				}
			}
			if err != nil {
				return nil, fmt.Errorf("member CSV row %d, column %q: %w", i+1, h, err)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// ReadDepartmentsCSV reads WeCom's department import template
// (部门名称,部门ID,父部门ID,排序) back into departments.
func ReadDepartmentsCSV(r io.Reader) ([]wecom.Department, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("department CSV: empty file")
	}
	header := rows[0]
	var out []wecom.Department
	for i, rec := range rows[1:] {
		var d wecom.Department
		for j, h := range header {
			if j >= len(rec) {
				break
			}
			v := rec[j]
			var err error
			switch h {
			case wecom.CSVColDeptName:
				d.Name = v
			case wecom.CSVColDeptID:
				d.ID, err = atoi(v)
			case wecom.CSVColDeptParentID:
				d.ParentID, err = atoi(v)
			case wecom.CSVColDeptOrder:
				d.Order, err = atoi(v)
			}
			if err != nil {
				return nil, fmt.Errorf("department CSV row %d, column %q: %w", i+1, h, err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func readCSV(r io.Reader) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) > 0 && len(rows[0]) > 0 {
		rows[0][0] = strings.TrimPrefix(rows[0][0], "\ufeff") // Excel's BOM
	}
	return rows, nil
}

func atoi(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(strings.TrimSpace(s))
}

// intList parses "1;2;3" (WeCom's list separator); "" is nil.
func intList(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, p := range strings.Split(s, ";") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q is not a ';'-separated list of integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}
