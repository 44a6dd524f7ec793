-- TEST DOUBLE. This is not Citus.
--
-- palisade's SQL-only stand-in for the Citus metadata that Patroni's Citus
-- handler reads and writes: pg_dist_node, pg_dist_authinfo and the
-- functions citus_add_node, citus_update_node, citus_remove_node and
-- citus_set_coordinator_host, with the signatures of Citus 12.1. Every
-- call is recorded in citus_test_double_calls. There is no distributed
-- query engine: citus_test_double_distributed_write plays the part of "a
-- distributed transaction through the coordinator" (see README.md).

\echo Use "CREATE EXTENSION citus" to load this file. \quit

-- Citus keeps its catalog in pg_catalog; creating a table there needs this
-- (superuser only; the setting ends with the script's transaction).
SET LOCAL allow_system_table_mods = on;

CREATE TYPE pg_catalog.noderole AS ENUM ('primary', 'secondary', 'unavailable');

CREATE SEQUENCE pg_catalog.pg_dist_node_nodeid_seq;
CREATE SEQUENCE pg_catalog.pg_dist_groupid_seq MINVALUE 1;

-- The columns of Citus's pg_dist_node.
CREATE TABLE pg_catalog.pg_dist_node (
    nodeid integer NOT NULL DEFAULT nextval('pg_catalog.pg_dist_node_nodeid_seq') PRIMARY KEY,
    groupid integer NOT NULL,
    nodename text NOT NULL,
    nodeport integer NOT NULL DEFAULT 5432,
    noderack text NOT NULL DEFAULT 'default',
    hasmetadata boolean NOT NULL DEFAULT false,
    isactive boolean NOT NULL DEFAULT true,
    noderole pg_catalog.noderole NOT NULL DEFAULT 'primary',
    nodecluster name NOT NULL DEFAULT 'default',
    metadatasynced boolean NOT NULL DEFAULT false,
    shouldhaveshards boolean NOT NULL DEFAULT true,
    UNIQUE (nodename, nodeport)
);

CREATE TABLE pg_catalog.pg_dist_authinfo (
    nodeid integer NOT NULL,
    rolename name NOT NULL,
    authinfo text NOT NULL,
    UNIQUE (nodeid, rolename)
);

-- The double's own record: one row per call of a Citus function, in the
-- calling transaction (a rolled back call leaves no row).
CREATE TABLE pg_catalog.citus_test_double_calls (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    func text NOT NULL,
    args jsonb NOT NULL,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid()
);

-- The advisory lock class standing for Citus's metadata lock on a node:
-- (citus_test_double_lock_class(), nodeid).
CREATE FUNCTION pg_catalog.citus_test_double_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 1668445555 $$;

CREATE FUNCTION pg_catalog.citus_test_double_record(func text, args jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO pg_catalog.citus_test_double_calls (func, args) VALUES (func, args) $$;

-- citus_add_node: register a node, or return the id of the node already
-- registered at that address. Like Citus: groupid -1 makes a new group for
-- a primary; a group holds one primary; a secondary needs a group with a
-- primary.
CREATE FUNCTION pg_catalog.citus_add_node(nodename text, nodeport integer, groupid integer DEFAULT -1,
                                          noderole pg_catalog.noderole DEFAULT 'primary',
                                          nodecluster name DEFAULT 'default')
RETURNS integer LANGUAGE plpgsql STRICT AS $$
DECLARE
    found integer;
    gid integer := groupid;
BEGIN
    PERFORM pg_catalog.citus_test_double_record('citus_add_node',
        jsonb_build_object('nodename', nodename, 'nodeport', nodeport, 'groupid', groupid,
                           'noderole', noderole, 'nodecluster', nodecluster));
    SELECT n.nodeid INTO found FROM pg_catalog.pg_dist_node n
     WHERE n.nodename = citus_add_node.nodename AND n.nodeport = citus_add_node.nodeport;
    IF found IS NOT NULL THEN
        RETURN found;
    END IF;
    IF gid = -1 THEN
        IF noderole <> 'primary' THEN
            RAISE EXCEPTION 'a secondary node needs a group id';
        END IF;
        gid := nextval('pg_catalog.pg_dist_groupid_seq');
    END IF;
    IF noderole = 'primary' AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n
                                        WHERE n.groupid = gid AND n.noderole = 'primary') THEN
        RAISE EXCEPTION 'group % already has a primary node', gid;
    END IF;
    IF noderole = 'secondary' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n
                                              WHERE n.groupid = gid AND n.noderole = 'primary') THEN
        RAISE EXCEPTION 'group % has no primary node', gid;
    END IF;
    INSERT INTO pg_catalog.pg_dist_node (groupid, nodename, nodeport, noderole, nodecluster, hasmetadata,
                                         metadatasynced, shouldhaveshards)
    VALUES (gid, nodename, nodeport, noderole, nodecluster, true, true, gid <> 0)
    RETURNING pg_dist_node.nodeid INTO found;
    RETURN found;
END $$;

-- citus_update_node: move a node's row to a new address. Like Citus, it
-- takes the node's metadata lock and keeps it until the end of the calling
-- transaction: distributed transactions through the coordinator (here
-- citus_test_double_distributed_write) wait for it. Citus would cancel
-- the holders of conflicting locks after lock_cooldown ms when force is
-- true; the double only records force and lock_cooldown.
CREATE FUNCTION pg_catalog.citus_update_node(node_id integer, new_node_name text, new_node_port integer,
                                             force boolean DEFAULT false, lock_cooldown integer DEFAULT 10000)
RETURNS void LANGUAGE plpgsql STRICT AS $$
BEGIN
    PERFORM pg_catalog.citus_test_double_record('citus_update_node',
        jsonb_build_object('node_id', node_id, 'new_node_name', new_node_name, 'new_node_port', new_node_port,
                           'force', force, 'lock_cooldown', lock_cooldown));
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n WHERE n.nodeid = node_id) THEN
        RAISE EXCEPTION 'node % not found', node_id;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n
               WHERE n.nodename = new_node_name AND n.nodeport = new_node_port AND n.nodeid <> node_id) THEN
        RAISE EXCEPTION 'there is already another node with the specified hostname and port';
    END IF;
    PERFORM pg_advisory_xact_lock(pg_catalog.citus_test_double_lock_class(), node_id);
    UPDATE pg_catalog.pg_dist_node SET nodename = new_node_name, nodeport = new_node_port
     WHERE nodeid = node_id;
END $$;

-- citus_remove_node: drop a node's row.
CREATE FUNCTION pg_catalog.citus_remove_node(nodename text, nodeport integer)
RETURNS void LANGUAGE plpgsql STRICT AS $$
BEGIN
    PERFORM pg_catalog.citus_test_double_record('citus_remove_node',
        jsonb_build_object('nodename', nodename, 'nodeport', nodeport));
    DELETE FROM pg_catalog.pg_dist_node n
     WHERE n.nodename = citus_remove_node.nodename AND n.nodeport = citus_remove_node.nodeport;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node at "%:%" does not exist', nodename, nodeport;
    END IF;
END $$;

-- citus_set_coordinator_host: the coordinator's own row (group 0).
CREATE FUNCTION pg_catalog.citus_set_coordinator_host(host text,
                                                      port integer DEFAULT current_setting('port')::integer,
                                                      node_role pg_catalog.noderole DEFAULT 'primary',
                                                      node_cluster name DEFAULT 'default')
RETURNS void LANGUAGE plpgsql STRICT AS $$
BEGIN
    PERFORM pg_catalog.citus_test_double_record('citus_set_coordinator_host',
        jsonb_build_object('host', host, 'port', port, 'node_role', node_role, 'node_cluster', node_cluster));
    UPDATE pg_catalog.pg_dist_node SET nodename = host, nodeport = port
     WHERE groupid = 0 AND noderole = node_role;
    IF NOT FOUND THEN
        INSERT INTO pg_catalog.pg_dist_node (groupid, nodename, nodeport, noderole, nodecluster, hasmetadata,
                                             metadatasynced, shouldhaveshards)
        VALUES (0, host, port, node_role, node_cluster, true, true, false);
    END IF;
END $$;

-- Like Citus: the metadata functions are STRICT and for superusers only.
REVOKE ALL ON FUNCTION pg_catalog.citus_add_node(text, integer, integer, pg_catalog.noderole, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_catalog.citus_update_node(integer, text, integer, boolean, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_catalog.citus_remove_node(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_catalog.citus_set_coordinator_host(text, integer, pg_catalog.noderole, name) FROM PUBLIC;

-- The test double's "distributed transaction through the coordinator":
-- take the metadata lock of the group's primary row in shared mode (so it
-- waits while citus_update_node holds it, as a Citus query waits for the
-- node's metadata lock), then read where that primary is now and run
-- `command` there through dblink (which the caller must have installed:
-- CREATE EXTENSION dblink). `conninfo` adds libpq settings (user, dbname,
-- password...) to the host and port read from pg_dist_node. Returns the
-- "host:port" the command ran on. Errors if the group has no primary or
-- the primary row names a node being demoted, which Patroni never lets a
-- waiting transaction see.
CREATE FUNCTION pg_catalog.citus_test_double_distributed_write(groupid integer, command text,
                                                               conninfo text DEFAULT '')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    id integer;
    host text;
    port integer;
BEGIN
    SELECT n.nodeid INTO id FROM pg_catalog.pg_dist_node n
     WHERE n.groupid = citus_test_double_distributed_write.groupid AND n.noderole = 'primary';
    IF id IS NULL THEN
        RAISE EXCEPTION 'group % has no primary node', groupid;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(pg_catalog.citus_test_double_lock_class(), id);
    -- A new statement: it sees what the lock holder committed.
    SELECT n.nodename, n.nodeport INTO host, port FROM pg_catalog.pg_dist_node n WHERE n.nodeid = id;
    IF host LIKE '%-demoted' THEN
        RAISE EXCEPTION 'the primary of group % is being demoted (%)', groupid, host;
    END IF;
    PERFORM dblink_exec(format('host=%s port=%s %s', host, port, conninfo), command);
    RETURN host || ':' || port;
END $$;
