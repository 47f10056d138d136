// The password-file reader that node-postgres itself depends on; it ships no types.
declare module 'pgpass' {
  interface ConnInfo {
    host?: string;
    port?: number | string;
    database?: string;
    user?: string;
  }
  function pgpass(connInfo: ConnInfo, callback: (password: string | undefined) => void): void;
  export default pgpass;
}
