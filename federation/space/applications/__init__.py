"""Applications (申請): form types an officer defines, applications members file, and their approval steps."""
