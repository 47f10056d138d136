-- Nothing in admmgt is callable by PUBLIC: a tenant's login must not drive the control plane.
REVOKE ALL ON SCHEMA admmgt FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA admmgt FROM PUBLIC;
